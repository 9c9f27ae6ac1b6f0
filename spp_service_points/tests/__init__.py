from . import test_agent_group
