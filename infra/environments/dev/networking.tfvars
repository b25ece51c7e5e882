member_account_ids = ["210000000001", "310000000001"]
hub_cidr_block     = "10.10.0.0/16"
spoke_supernet     = "10.0.0.0/8"
