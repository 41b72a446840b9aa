"""ecglens.app: the application layer that composes the packages for users.

From a path to records (:mod:`.inputs`: signal files or digitized pages), batches with safe
names, atomic outputs, a manifest and resume (:mod:`.batch`). Only this layer (and the CLI)
brings the digitizer together with the analysis and the classifier.
"""
