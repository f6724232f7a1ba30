"""Between the launch and the steps, on the user's machine: the one small interface every backend
speaks (_base), the local backend (runs the compiled spec as subprocesses) and Vertex AI's."""
