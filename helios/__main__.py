import sys

from .cache import cache_dir
from .placement.read_ahead import start_code_read_ahead

start_code_read_ahead(cache_dir())  # before torch: on a cold disk the imports wait on thousands of small reads

from .cli import main

sys.exit(main())
