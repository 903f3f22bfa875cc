"""Command-line programs (argparse ``main`` functions behind the console scripts)."""
