"""What SER's core does with one message: validation, forwarding, replies, the script context."""
