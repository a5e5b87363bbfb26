def keep():
    return 1


def gone():
    return 2
