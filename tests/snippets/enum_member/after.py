import enum


class State(enum.Enum):
    IDLE = 1
    BUSY = 2
    DONE = 3
