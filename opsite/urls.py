from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from common.login import login_rate_limited

admin.site.login = login_rate_limited(admin.site.login)  # type: ignore[method-assign,assignment]

urlpatterns = [
    path("", include("monitoring.urls")),
    path("", include("realtime.urls")),
    path("accounts/login/", login_rate_limited(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
