using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.LowRank;

/// <summary>
/// Elastic weight anchoring of a fixed list of parameters (EWC, Kirkpatrick et al. 2017, eq. 3, in its online form with
/// one anchor, Schwarz et al. 2018): penalty = sum_p Omega_p (theta_p - theta*_p)^2, where Omega accumulates each
/// finished task's diagonal Fisher (squared gradients of the task loss on its data) and theta* is the value after the
/// last task. Strong where earlier tasks depend on a parameter, zero where none does, so unused capacity stays plastic.
/// Each task's Fisher is divided by its mean over all anchored numbers (<see cref="NormaliseEachTask"/>) so that the
/// strength setting does not depend on the loss scale of a converged task.
/// </summary>
public sealed class ElasticAnchor : nn.Module
{
    private readonly Func<IReadOnlyList<Parameter>> anchoredSource;   // read on each use: Module.to replaces parameters
    private readonly Tensor[] importance;
    private readonly Tensor[] anchor;
    private Tensor[]? fisher;
    private long fisherBatches;

    public bool NormaliseEachTask { get; }

    /// <param name="parameters">The anchored parameters, fetched again on each use (they belong to other modules,
    /// whose <c>Module.to</c> replaces them).</param>
    public ElasticAnchor(Func<IReadOnlyList<Parameter>> parameters, bool normaliseEachTask = true) : base(nameof(ElasticAnchor))
    {
        anchoredSource = parameters;
        var anchored = parameters();
        NormaliseEachTask = normaliseEachTask;
        importance = anchored.Select(p => zeros_like(p).detach()).ToArray();
        anchor = anchored.Select(p => p.detach().clone()).ToArray();
        for (var i = 0; i < anchored.Count; i++)
        {
            register_buffer($"importance_{i}", importance[i]);
            register_buffer($"anchor_{i}", anchor[i]);
        }
    }

    protected override void _toEpilog(ScalarType? dtype, Device? device, bool non_blocking)
    {
        base._toEpilog(dtype, device, non_blocking);
        this.RebindBuffers(importance, "importance_");
        this.RebindBuffers(anchor, "anchor_");
        if (fisher is not null)
            for (var i = 0; i < fisher.Length; i++)
            {
                var moved = fisher[i].to(dtype ?? fisher[i].dtype, device ?? fisher[i].device).DetachFromDisposeScope();
                if (!ReferenceEquals(moved, fisher[i])) fisher[i].Dispose();
                fisher[i] = moved;
            }
    }

    public IReadOnlyList<Tensor> Importance => importance;
    public IReadOnlyList<Tensor> Anchor => anchor;

    /// <summary>sum_p Omega_p (theta_p - theta*_p)^2 (a scalar with gradients to the parameters).</summary>
    public Tensor Penalty()
    {
        var anchored = anchoredSource();
        using var scope = NewDisposeScope();
        Tensor total = zeros(1, dtype: anchored[0].dtype, device: anchored[0].device).squeeze();
        for (var i = 0; i < anchored.Count; i++)
            total = total.Plus((importance[i] * (anchored[i] - anchor[i]).square()).sum());
        return total.MoveToOuterDisposeScope();
    }

    /// <summary>Call after <c>backward()</c> of one batch of the task's loss to add its squared gradients.</summary>
    public void AccumulateSquaredGradients()
    {
        var anchored = anchoredSource();
        using var noGrad = no_grad();
        fisher ??= anchored.Select(p => zeros_like(p).detach().DetachFromDisposeScope()).ToArray();
        for (var i = 0; i < anchored.Count; i++)
            if (anchored[i].grad is { } grad) fisher[i].PlusInPlace(grad.square());
        fisherBatches++;
    }

    /// <summary>Adds the accumulated Fisher (mean over batches, normalised when asked) to Omega and moves the anchor to
    /// the current values.</summary>
    public void CommitTask()
    {
        var anchored = anchoredSource();
        using var noGrad = no_grad();
        if (fisher is not null && fisherBatches > 0)
        {
            var total = fisher.Sum(f => f.sum().item<float>());
            var count = fisher.Sum(f => f.numel());
            var divisor = NormaliseEachTask ? total / count : fisherBatches;
            if (divisor > 0)
            {
                using var divisorScalar = ((double)divisor).ToScalar();
                for (var i = 0; i < anchored.Count; i++) importance[i].PlusInPlace(fisher[i].div(divisorScalar));
            }
        }
        if (fisher is not null) foreach (var f in fisher) f.Dispose();
        fisher = null;
        fisherBatches = 0;
        MoveAnchor();
    }

    public void MoveAnchor()
    {
        var anchored = anchoredSource();
        using var noGrad = no_grad();
        for (var i = 0; i < anchored.Count; i++) anchor[i].copy_(anchored[i]);
    }

    /// <summary>Forgets the importance of a slice of parameter <paramref name="index"/> (a component that was split off or
    /// renewed) and anchors it at its current value.</summary>
    public void Release(int index, int dim, long start, long length)
    {
        var anchored = anchoredSource();
        using var noGrad = no_grad();
        importance[index].narrow(dim, start, length).zero_();
        anchor[index].narrow(dim, start, length).copy_(anchored[index].narrow(dim, start, length));
    }
}
