import functools


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        return ("logged", fn(*args))
    return wrapper


@logged
def greet(name):
    return "hello " + name
