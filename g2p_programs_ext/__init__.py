from . import cel
from . import ern
from . import models
from . import wizards
