def capture(m):
    return {"greet": m.greet}


def verify(m, refs):
    assert refs["greet"]("bo") == ("logged", "hi bo")
