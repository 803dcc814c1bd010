import GiftCore
print("gift")
