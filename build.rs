//! The capsa binary's layout comes from symbol-order.txt through the
//! linker wrapper (scripts/link-ordered.sh, see there): relink when either
//! changes. Nothing else to do at build time.
fn main() {
    println!("cargo::rerun-if-changed=symbol-order.txt");
    println!("cargo::rerun-if-changed=scripts/link-ordered.sh");
}
