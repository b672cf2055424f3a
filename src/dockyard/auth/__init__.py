"""Who is calling and what they may do: principals, passwords, roles, tokens."""
