def capture(m):
    c = m.Counter()
    c.step()
    return {"instance": c, "bound": c.step, "cls": m.Counter}


def verify(m, refs):
    assert refs["bound"]() == 11
    assert isinstance(refs["instance"], m.Counter) and m.Counter is refs["cls"]
