using ContinualMoE.Prompts;
using ContinualMoE.Training;

namespace ContinualMoE.Methods;

/// <summary>NoRGa's settings: the HiDe-Prompt pipeline's (<see cref="HideOptions"/>) and the gate's.</summary>
public sealed record NorgaOptions : HideOptions
{
    /// <summary>The non-linear residual gate on the prefix logits; false leaves HiDe-Prompt with NoRGa's other defaults
    /// (an ablation).</summary>
    public bool Gate { get; init; } = true;
    /// <summary>tanh, sigmoid or gelu (the official config default is tanh; the official NoRGa scripts pass sigmoid).</summary>
    public string GateActivation { get; init; } = "tanh";
}

/// <summary>
/// NoRGa (Le et al., "Mixture of Experts Meets Prompt-Based Continual Learning", NeurIPS 2024): prefix tuning read as
/// new experts of the mixture of experts inside self-attention, with the linear gating score of those experts replaced by
/// the non-linear residual gate s + alpha * act(tau * s) (<see cref="NonLinearResidualGate"/>). Everything else is
/// the HiDe-Prompt pipeline (<see cref="HidePrompt"/>); only the defaults differ: gate on, TAP learning rate 0.05
/// (the official CIFAR-100 value for NoRGa).
/// </summary>
[ContinualMethod("norga", "NoRGa: HiDe-Prompt with a non-linear residual gate on the prefix experts (NeurIPS 2024)")]
public sealed class Norga : HidePrompt
{
    public static NorgaOptions Defaults { get; } = new() { TapLearningRate = 0.05 };

    public Norga(MethodContext context) : this(context, context.Settings.Bind(Defaults, "norga")) { }

    private Norga(MethodContext context, NorgaOptions options)
        : base(context, options, "norga", options.Gate ? Gate(options.GateActivation) : null) { }

    private static Func<int, NonLinearResidualGate> Gate(string activation) =>
        blocks => new NonLinearResidualGate(blocks, NonLinearResidualGate.Parse(activation));
}
