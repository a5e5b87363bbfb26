"""Views of the example; `notes` is in-memory state that a restart would lose."""

from django.http import HttpResponse
from django.shortcuts import render

notes: list = []


def index(request):
    return render(request, "index.html", {"notes": notes})


def add(request):
    notes.append(request.GET.get("text", ""))
    return HttpResponse(f"{len(notes)} notes")


def count(request):
    return HttpResponse(f"{len(notes)} notes")
