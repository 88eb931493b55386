"""Text-to-image generations for brand customers: requests, outputs, and what each one owes."""
