using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Prompts;

public enum GateActivation { Tanh, Sigmoid, Gelu }

/// <summary>
/// NoRGa's non-linear residual gate (Le et al., "Mixture of Experts Meets Prompt-Based Continual Learning",
/// NeurIPS 2024). Prefix tuning adds new experts to the mixture of experts inside self-attention whose gating score is
/// the linear q k_p^T / sqrt(d); NoRGa replaces it, on the prefix logits only and before the joint softmax, by
/// s' = s + alpha * act(tau * s). One (tau, alpha) pair per prompted layer, both initialised to 1 and shared by all task
/// prompts (as the official code's <c>act_scale</c> [layers, 2]: index 0 is tau, index 1 is alpha).
/// </summary>
public sealed class NonLinearResidualGate : nn.Module
{
    private readonly Parameter scales; // [layers, 2]: tau, alpha

    public GateActivation Activation { get; }

    public NonLinearResidualGate(int layers, GateActivation activation) : base(nameof(NonLinearResidualGate))
    {
        Activation = activation;
        scales = new Parameter(ones(layers, 2));
        register_parameter("scales", scales);
    }

    public Parameter Scales => scales;
    public Tensor Tau => scales.select(1, 0);
    public Tensor Alpha => scales.select(1, 1);

    /// <summary>Freezes or unfreezes (tau, alpha): the official code trains them during the first task only.</summary>
    public bool Trainable
    {
        get => scales.requires_grad;
        set => scales.requires_grad_(value);
    }

    /// <summary>The gate of prompted layer <paramref name="layer"/> applied to prefix logits s (any shape).</summary>
    public Tensor Apply(int layer, Tensor s)
    {
        var tau = scales[layer, 0];
        var alpha = scales[layer, 1];
        return s.Plus(alpha * Activate(tau * s));
    }

    public Func<Tensor, Tensor> For(int layer) => s => Apply(layer, s);

    private Tensor Activate(Tensor x) => Activation switch
    {
        GateActivation.Tanh => x.tanh(),
        GateActivation.Sigmoid => x.sigmoid(),
        GateActivation.Gelu => nn.functional.gelu(x),
        _ => throw new ArgumentOutOfRangeException(nameof(Activation)),
    };

    public static GateActivation Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "tanh" => GateActivation.Tanh,
        "sigmoid" => GateActivation.Sigmoid,
        "gelu" => GateActivation.Gelu,
        _ => throw new ContinualMoEException($"norga: gate_activation must be tanh, sigmoid or gelu, got '{name}'"),
    };
}
