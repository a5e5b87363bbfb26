def capture(m):
    return {"value": m.value}


def verify(m, refs):
    assert m.reloads == 1 and refs["value"]() == 2
