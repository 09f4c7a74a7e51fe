from django.contrib import admin

from .models import Order

admin.site.register(Order)  # change an order's status here and watch its page update
