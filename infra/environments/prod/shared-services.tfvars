member_account_ids = ["230000000001", "330000000001"]
app_repositories   = ["orders", "checkout"]
