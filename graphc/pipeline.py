"""placeholder during bring-up"""
def check_grads(*a, **k): raise NotImplementedError
compile = compile_train_step = compile_value_and_grad = grad = optim = check_grads
