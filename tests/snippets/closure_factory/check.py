def capture(m):
    return {"double": m.make_scaler(2)}


def verify(m, refs):
    assert refs["double"](5) == 11
