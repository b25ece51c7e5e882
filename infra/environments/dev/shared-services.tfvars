member_account_ids = ["210000000001", "310000000001"]
app_repositories   = ["orders", "checkout"]
