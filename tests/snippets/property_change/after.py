class Temp:
    def __init__(self, c):
        self.c = c

    @property
    def f(self):
        return round(self.c * 9 / 5 + 32)
