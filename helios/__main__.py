import sys

from . import DEFAULT_MODEL
from .cache import cache_dir
from .placement.read_ahead import model_named, start_early

start_early(model_named(sys.argv[1:], DEFAULT_MODEL), cache_dir())  # before torch: a cold disk is what a start waits on

from .cli import main

sys.exit(main())
