"""Used on both sides of the border between the user's machine and the step's container: the
staging root, the object layout, the formats of payloads and results, a job's dirs."""
