# AWS Private CA hierarchy in the shared-services account:
#   root CA        RSA 2048, SHA256WITHRSA, self-signed, used for nothing but signing the subordinate
#   subordinate CA EC P-256, SHA256WITHECDSA, path length 0, issues the service certificates
# The subordinate is shared through AWS RAM so that the member accounts can issue ACM private
# certificates (the Lattice custom domains) and outrigger identity certificates from it. The root
# certificate is the trust bundle every outrigger sidecar verifies its peers against.

data "aws_partition" "current" {}

resource "aws_acmpca_certificate_authority" "root" {
  type       = "ROOT"
  usage_mode = "GENERAL_PURPOSE"

  certificate_authority_configuration {
    key_algorithm     = "RSA_2048"
    signing_algorithm = "SHA256WITHRSA"

    subject {
      common_name  = var.root_common_name
      organization = var.organization
    }
  }

  permanent_deletion_time_in_days = 30

  tags = merge(var.tags, { Name = "${var.name}-root-ca" })
}

resource "aws_acmpca_certificate" "root" {
  certificate_authority_arn   = aws_acmpca_certificate_authority.root.arn
  certificate_signing_request = aws_acmpca_certificate_authority.root.certificate_signing_request
  signing_algorithm           = "SHA256WITHRSA"
  template_arn                = "arn:${data.aws_partition.current.partition}:acm-pca:::template/RootCACertificate/V1"

  validity {
    type  = "YEARS"
    value = var.root_validity_years
  }
}

resource "aws_acmpca_certificate_authority_certificate" "root" {
  certificate_authority_arn = aws_acmpca_certificate_authority.root.arn
  certificate               = aws_acmpca_certificate.root.certificate
  certificate_chain         = aws_acmpca_certificate.root.certificate_chain
}

resource "aws_acmpca_certificate_authority" "subordinate" {
  type       = "SUBORDINATE"
  usage_mode = "GENERAL_PURPOSE"

  certificate_authority_configuration {
    key_algorithm     = "EC_prime256v1"
    signing_algorithm = "SHA256WITHECDSA"

    subject {
      common_name  = var.subordinate_common_name
      organization = var.organization
    }
  }

  revocation_configuration {
    ocsp_configuration {
      enabled = true
    }
  }

  permanent_deletion_time_in_days = 30

  tags = merge(var.tags, { Name = "${var.name}-issuing-ca" })
}

# The root signs the subordinate's CSR (with the root's RSA key, hence SHA256WITHRSA).
resource "aws_acmpca_certificate" "subordinate" {
  certificate_authority_arn   = aws_acmpca_certificate_authority.root.arn
  certificate_signing_request = aws_acmpca_certificate_authority.subordinate.certificate_signing_request
  signing_algorithm           = "SHA256WITHRSA"
  template_arn                = "arn:${data.aws_partition.current.partition}:acm-pca:::template/SubordinateCACertificate_PathLen0/V1"

  validity {
    type  = "YEARS"
    value = var.subordinate_validity_years
  }

  depends_on = [aws_acmpca_certificate_authority_certificate.root]
}

resource "aws_acmpca_certificate_authority_certificate" "subordinate" {
  certificate_authority_arn = aws_acmpca_certificate_authority.subordinate.arn
  certificate               = aws_acmpca_certificate.subordinate.certificate
  certificate_chain         = aws_acmpca_certificate.subordinate.certificate_chain
}

# ACM in this account may renew the private certificates it issues from the subordinate.
resource "aws_acmpca_permission" "acm_renewal" {
  certificate_authority_arn = aws_acmpca_certificate_authority.subordinate.arn
  actions                   = ["IssueCertificate", "GetCertificate", "ListPermissions"]
  principal                 = "acm.amazonaws.com"
}

resource "aws_ram_resource_share" "subordinate" {
  name                      = "${var.name}-issuing-ca"
  allow_external_principals = false
  permission_arns           = ["arn:${data.aws_partition.current.partition}:ram::aws:permission/AWSRAMDefaultPermissionCertificateAuthority"]

  tags = var.tags
}

resource "aws_ram_resource_association" "subordinate" {
  resource_arn       = aws_acmpca_certificate_authority.subordinate.arn
  resource_share_arn = aws_ram_resource_share.subordinate.arn

  depends_on = [aws_acmpca_certificate_authority_certificate.subordinate]
}

resource "aws_ram_principal_association" "subordinate" {
  for_each = toset(var.share_principals)

  principal          = each.value
  resource_share_arn = aws_ram_resource_share.subordinate.arn
}
