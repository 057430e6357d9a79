"""``l4kit replay``: the TCP conversations in a capture file."""
