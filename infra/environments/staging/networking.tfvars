member_account_ids = ["220000000001", "320000000001"]
hub_cidr_block     = "10.20.0.0/16"
spoke_supernet     = "10.0.0.0/8"
