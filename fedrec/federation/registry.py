"""The federated pairs (backbone, item representation): one line each."""
from fedrec.federation.method import register
from fedrec.federation.mf import FederatedMF
from fedrec.federation.sasrec import FederatedSASRec

register("mf", "full", FederatedMF)
register("mf", "codes", FederatedMF)
register("sasrec", "full", FederatedSASRec)
register("sasrec", "codes", FederatedSASRec)
register("mf", "tt", FederatedMF)
register("sasrec", "tt", FederatedSASRec)
