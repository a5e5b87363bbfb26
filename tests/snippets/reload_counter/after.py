import hotswap

reloads = 0
if hotswap.currently_reloading():
    reloads += 1


def value():
    return 2
