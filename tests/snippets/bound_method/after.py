class Counter:
    def __init__(self):
        self.n = 0

    def step(self):
        self.n += 10
        return self.n
