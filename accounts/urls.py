from django.urls import re_path

from accounts import apis

urlpatterns = [
    re_path(r"^login/?$", apis.AuthLoginApi.as_view(), name="auth-login"),
    re_path(r"^refresh/?$", apis.AuthRefreshApi.as_view(), name="auth-refresh"),
    re_path(r"^logout/?$", apis.AuthLogoutApi.as_view(), name="auth-logout"),
    re_path(r"^me/?$", apis.AuthMeApi.as_view(), name="auth-me"),
    re_path(r"^validate/?$", apis.AuthValidateApi.as_view(), name="auth-validate"),
]
