from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render

from .herald_client import herald
from .models import Order


@login_required
def order_page(request, pk):
    order = get_object_or_404(Order, pk=pk, owner=request.user)
    return render(request, "orders/order.html", {"order": order, "herald_url": settings.HERALD_PUBLIC_URL})


@login_required
def herald_token(request, pk):
    """A short-lived token that lets this page subscribe to this order's topic and nothing else.
    The page asks again (herald.js calls getToken) when herald answers 401."""
    order = get_object_or_404(Order, pk=pk, owner=request.user)
    token = herald().subscriber_token(f"user:{request.user.pk}", subscribe=[order.topic], ttl=300)
    return HttpResponse(token, content_type="text/plain", headers={"Cache-Control": "no-store"})
