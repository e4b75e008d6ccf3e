"""sleep_ray: let a deployed language model learn continually by sleeping.

Importing the package imports neither Ray, torch nor vLLM; each module imports what it needs.
"""

__version__ = "0.1.0"
