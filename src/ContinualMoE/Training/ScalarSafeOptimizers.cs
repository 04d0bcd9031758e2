using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Training;

// TorchSharp's Adam, AdamW and SGD steps pass C# doubles where libtorch takes a Scalar (mul_(beta1), add_(grad, alpha),
// addcmul_(value), division by a double). Each becomes a temporary Scalar whose handle goes to libtorch while the managed
// object is already unreachable, so a garbage collection on another thread (the data loader's) can free it mid-call:
// an error at best, a silently wrong update at worst (docs/known-issues.md). These subclasses do the same arithmetic,
// in the same order (so results are bit-identical to TorchSharp's), with every Scalar held by a using until the step ends.
// Only the options this project sets are supported (no amsgrad, maximize, dampening or Nesterov); Optimizers.Create
// never sets them.

/// <summary>PyTorch's Adam (L2 weight decay added to the gradient), every scalar kept alive.</summary>
public sealed class ScalarSafeAdam(IEnumerable<Adam.ParamGroup> groups, double lr, double beta1, double beta2, double weightDecay)
    : Adam(groups, lr, beta1, beta2, weight_decay: weightDecay)
{
    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var options = (Options)group.Options;
        AdamUpdate.Run(group.Parameters, p => (State)_state[p.Handle], (s, step) => s.step = step, s => s.step,
            s => s.exp_avg, s => s.exp_avg_sq, options.LearningRate!.Value, options.beta1!.Value, options.beta2!.Value,
            options.eps!.Value, l2WeightDecay: options.weight_decay!.Value, decoupledWeightDecay: 0);
    }, closure);
}

/// <summary>PyTorch's AdamW (decoupled weight decay p *= 1 - lr * wd), every scalar kept alive.</summary>
public sealed class ScalarSafeAdamW(IEnumerable<AdamW.ParamGroup> groups, double lr, double beta1, double beta2, double weightDecay)
    : AdamW(groups, lr, beta1, beta2, weight_decay: weightDecay)
{
    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var options = (Options)group.Options;
        AdamUpdate.Run(group.Parameters, p => (State)_state[p.Handle], (s, step) => s.step = step, s => s.step,
            s => s.exp_avg, s => s.exp_avg_sq, options.LearningRate!.Value, options.beta1!.Value, options.beta2!.Value,
            options.eps!.Value, l2WeightDecay: 0, decoupledWeightDecay: options.weight_decay!.Value);
    }, closure);
}

/// <summary>PyTorch's SGD with momentum (no dampening, no Nesterov), every scalar kept alive.</summary>
public sealed class ScalarSafeSgd(IEnumerable<SGD.ParamGroup> groups, double lr, double momentum, double weightDecay)
    : SGD(groups, lr, momentum, weight_decay: weightDecay)
{
    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var options = group.Options;
        var momentum = options.momentum!.Value;
        var weightDecay = options.weight_decay!.Value;
        using var momentumScalar = momentum.ToScalar();
        using var one = 1.0.ToScalar();
        using var decay = weightDecay.ToScalar();
        using var negativeRate = (-options.LearningRate!.Value).ToScalar();
        foreach (var param in group.Parameters)
        {
            var state = (State)_state[param.Handle];
            var grad = param.grad;
            if (grad is null) continue;
            if (weightDecay != 0) grad = grad.add(param, decay);
            if (momentum != 0)
            {
                if (state.momentum_buffer is null) state.momentum_buffer = grad.clone().detach().DetachFromDisposeScope();
                else state.momentum_buffer.mul_(momentumScalar).add_(grad, one);
                grad = state.momentum_buffer;
            }
            param.add_(grad, negativeRate);
        }
    }, closure);
}

/// <summary>The Adam/AdamW update of one parameter group, shared by both (they differ only in where weight decay goes).</summary>
internal static class AdamUpdate
{
    public static void Run<TState>(IEnumerable<Parameter> parameters, Func<Parameter, TState> stateOf,
        Action<TState, long> setStep, Func<TState, long> stepOf, Func<TState, Tensor> firstMoment, Func<TState, Tensor> secondMoment,
        double lr, double beta1, double beta2, double eps, double l2WeightDecay, double decoupledWeightDecay)
    {
        using var beta1Scalar = beta1.ToScalar();
        using var beta2Scalar = beta2.ToScalar();
        using var oneMinusBeta1 = (1 - beta1).ToScalar();
        using var oneMinusBeta2 = (1 - beta2).ToScalar();
        using var epsScalar = eps.ToScalar();
        using var l2Scalar = l2WeightDecay.ToScalar();
        using var decoupledScalar = (1 - lr * decoupledWeightDecay).ToScalar();
        foreach (var param in parameters)
        {
            var grad = param.grad;
            if (grad is null) continue;
            var state = stateOf(param);
            var step = stepOf(state) + 1;
            setStep(state, step);
            if (decoupledWeightDecay != 0) param.mul_(decoupledScalar);
            if (l2WeightDecay != 0) grad = grad.add(param, l2Scalar);
            var biasCorrection1 = 1 - Math.Pow(beta1, step);
            var biasCorrection2 = 1 - Math.Pow(beta2, step);
            firstMoment(state).mul_(beta1Scalar).add_(grad, oneMinusBeta1);
            secondMoment(state).mul_(beta2Scalar).addcmul_(grad, grad, oneMinusBeta2);
            using var sqrtCorrection2 = Math.Sqrt(biasCorrection2).ToScalar();
            using var negativeStepSize = (-(lr / biasCorrection1)).ToScalar();
            var denominator = secondMoment(state).sqrt().div_(sqrtCorrection2).add_(epsScalar);
            param.addcdiv_(firstMoment(state), denominator, negativeStepSize);
        }
    }
}
