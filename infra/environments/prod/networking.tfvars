member_account_ids = ["230000000001", "330000000001"]
hub_cidr_block     = "10.30.0.0/16"
spoke_supernet     = "10.0.0.0/8"
