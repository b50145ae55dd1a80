"""Server side of gate offline operation: allow-list sync to gates and offline log intake."""
