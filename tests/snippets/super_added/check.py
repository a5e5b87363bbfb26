def capture(m):
    return {"obj": m.Child()}


def verify(m, refs):
    assert refs["obj"].hello() == "child>base"
