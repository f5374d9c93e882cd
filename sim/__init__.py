"""cocotb benches for generated accelerators, driven by their metadata JSON."""
