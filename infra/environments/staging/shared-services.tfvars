member_account_ids = ["220000000001", "320000000001"]
app_repositories   = ["orders", "checkout"]
