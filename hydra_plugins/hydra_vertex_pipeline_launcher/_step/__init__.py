"""What runs inside every step's container: fetch, verify, run the job, hand it back. Imports
only the shared modules: no launch, backend or command-line code, and no kfp or aiplatform."""
