from django.urls import path

from . import apis

urlpatterns = [
    path("register/", apis.RegisterApi.as_view(), name="auth-register"),
    path("token/", apis.TokenApi.as_view(), name="auth-token"),
    path("me/", apis.MeApi.as_view(), name="auth-me"),
    path("siwe/nonce/", apis.SiweNonceApi.as_view(), name="auth-siwe-nonce"),
    path("siwe/verify/", apis.SiweVerifyApi.as_view(), name="auth-siwe-verify"),
    path("siwe/link/", apis.SiweLinkApi.as_view(), name="auth-siwe-link"),
]
