from django.contrib.auth.views import LogoutView
from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(next_page="/login/"), name="logout"),
    path("label/<int:campaign_id>/", views.label, name="label"),
    path("campaigns/<int:campaign_id>/", views.campaign_detail, name="campaign"),
]
