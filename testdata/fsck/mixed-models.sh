# model: mapped-xattr
# expect: mixed-models
# unrepairable: which model is right is the user's call (--model)
mk
mkdir "$T/etc/.virtfs_metadata"
