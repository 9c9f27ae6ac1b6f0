from . import cel, models
