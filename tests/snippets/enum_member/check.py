def capture(m):
    return {"cls": m.State, "idle": m.State.IDLE}


def verify(m, refs):
    assert m.State is refs["cls"] and m.State.IDLE is refs["idle"]
    assert refs["cls"](3).name == "DONE"
