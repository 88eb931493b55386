"""Safe prompts: the deployment's deny lists, named styles only with the artist's consent, and the
record of every refusal."""
