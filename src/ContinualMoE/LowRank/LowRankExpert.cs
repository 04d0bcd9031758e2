using ContinualMoE.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.LowRank;

/// <summary>
/// One low-rank expert: at every site it adapts, delta(x) = scaling * B diag(m) A x with A [rank, in] and B [out, rank]
/// (LoRA, Hu et al. 2021, eq. 3: A random, B zero, so the expert has exactly no effect until B is trained). The slot
/// mask m [sites, rank] switches single rank-1 components on or off, which lets an expert hold capacity it does not use
/// yet (a checkpoint's shapes never change) and lets methods move single components between experts.
/// </summary>
public sealed class LowRankExpert : nn.Module
{
    private readonly ParameterList down;  // per site A [rank, in]
    private readonly ParameterList up;    // per site B [out, rank]
    [TorchSharp.Utils.ComponentName(Name = "slot_mask")]
    private readonly Tensor slotMask;     // [sites, rank], 1 = component in use

    public IReadOnlyList<LinearLayerShape> Sites { get; }
    public int Rank { get; }
    public double Scaling { get; }

    /// <param name="activeRank">Components switched on at the start (null: all <paramref name="rank"/>).</param>
    public LowRankExpert(IReadOnlyList<LinearLayerShape> sites, int rank, double scaling, int? activeRank = null) : base(nameof(LowRankExpert))
    {
        if (rank < 1) throw new ContinualMoEException($"a low-rank expert needs rank at least 1, got {rank}");
        Sites = sites;
        Rank = rank;
        Scaling = scaling;
        down = new ParameterList();
        up = new ParameterList();
        foreach (var site in sites)
        {
            down.Add(new Parameter(empty(rank, site.InFeatures)));
            up.Add(new Parameter(zeros(site.OutFeatures, rank)));
        }
        slotMask = zeros(sites.Count, rank);
        register_module("down", down);
        register_module("up", up);
        register_buffer("slot_mask", slotMask);
        using var noGrad = no_grad();
        for (var s = 0; s < sites.Count; s++) InitialiseDown(s, 0, rank);
        slotMask.narrow(1, 0, Math.Min(rank, activeRank ?? rank)).fill_(1);
    }

    /// <summary>A [rank, in] at site index <paramref name="site"/>.</summary>
    public Parameter Down(int site) => (Parameter)down[site];
    /// <summary>B [out, rank] at site index <paramref name="site"/>.</summary>
    public Parameter Up(int site) => (Parameter)up[site];
    public Tensor SlotMask => slotMask;
    public IEnumerable<Parameter> Parameters() => down.Concat(up).Cast<Parameter>();

    public bool IsSlotActive(int site, int slot) => slotMask[site, slot].item<float>() > 0;

    public int ActiveSlots(int site) => (int)slotMask[site].sum().item<float>();

    /// <summary>Trainable numbers in use: (in + out) per active rank-1 component.</summary>
    public long ActiveParameterCount()
    {
        var perSite = slotMask.sum(dim: 1).data<float>().ToArray();
        return Sites.Select((s, i) => (long)perSite[i] * (s.InFeatures + s.OutFeatures)).Sum();
    }

    public void SetSlotActive(int site, int slot, bool active)
    {
        using var noGrad = no_grad();
        slotMask[site, slot].fill_(active ? 1 : 0);
    }

    /// <summary>Makes a component new: A row redrawn, B column zero (no effect), switched on.</summary>
    public void ResetSlot(int site, int slot)
    {
        using var noGrad = no_grad();
        InitialiseDown(site, slot, 1);
        Up(site).narrow(1, slot, 1).zero_();
        slotMask[site, slot].fill_(1);
    }

    /// <summary>Copies component <paramref name="slot"/> at <paramref name="site"/> into <paramref name="target"/>'s
    /// slot <paramref name="targetSlot"/> and switches it on there (the experts must share sites and scaling).</summary>
    public void CopySlotTo(int site, int slot, LowRankExpert target, int targetSlot)
    {
        using var noGrad = no_grad();
        target.Down(site).narrow(0, targetSlot, 1).copy_(Down(site).narrow(0, slot, 1));
        target.Up(site).narrow(1, targetSlot, 1).copy_(Up(site).narrow(1, slot, 1));
        target.slotMask[site, targetSlot].fill_(1);
    }

    /// <summary>The dense change scaling * B diag(m) A [out, in] this expert makes to the site's weight.</summary>
    public Tensor DenseDelta(int site)
    {
        using var scope = NewDisposeScope();
        var masked = Down(site) * slotMask[site].mul(Scalars.Of(Scaling)).unsqueeze(1);
        return Up(site).matmul(masked).MoveToOuterDisposeScope();
    }

    /// <summary>LoRA's A init (peft: kaiming_uniform_ with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in))).</summary>
    private void InitialiseDown(int site, int start, int length)
    {
        var bound = 1.0 / Math.Sqrt(Sites[site].InFeatures);
        Down(site).narrow(0, start, length).uniform_(-bound, bound);
    }
}
