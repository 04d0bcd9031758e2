using ContinualMoE.Backbones;
using ContinualMoE.Checkpoints;
using ContinualMoE.Prompts;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.HideNorga;

/// <summary>
/// Our HiDe-Prompt / NoRGa components against the official modules themselves (Minhchuyentoancbn/MoE_PromptCL e418337:
/// attention.py NoRGa_Attention / PreT_Attention, peft/prompt/*.py EPrompt, MlpMapping), run by
/// tools/make_hide_norga_fixture.py on small random inputs with fixed weights. "train" is the official training call
/// (one task for the batch, prompt momentum 0.01), "eval" the test-time call (per-sample predicted tasks).
/// </summary>
public class OfficialParityTests
{
    private const int Layers = 2, Tasks = 3, Length = 3, Heads = 2, HeadDim = 4, TrainTask = 2;
    private const double Momentum = 0.01;
    private static readonly string FixturePath = Path.Combine(AppContext.BaseDirectory, "Fixtures", "hide_norga_official.safetensors");
    private static readonly Lazy<Dictionary<string, Tensor>> Fixture = new(() => SafeTensorsFile.Read(FixturePath));

    private static Tensor F(string name) => Fixture.Value[name];

    private static VitAttention[] Attention()
    {
        var layers = new VitAttention[Layers];
        for (var l = 0; l < Layers; l++)
        {
            layers[l] = new VitAttention(Heads * HeadDim, Heads);
            using var noGrad = no_grad();
            foreach (var (name, p) in layers[l].named_parameters()) p.copy_(F($"weights.layer{l}.{name}"));
        }
        return layers;
    }

    private static TaskPrefixPrompts Prompts(GateActivation? gate, PromptBatchLayout layout)
    {
        var g = gate is { } activation ? new NonLinearResidualGate(Layers, activation) : null;
        var prompts = new TaskPrefixPrompts([0, 1], Tasks, Length, Heads, HeadDim, g, layout);
        using var noGrad = no_grad();
        prompts.Prompts.copy_(F("weights.prompt"));
        g?.Scales.copy_(F("weights.act_scale").reshape(Layers, 2));
        return prompts;
    }

    /// <summary>Our attention of each prompted layer on the fixture input: [layers, B, N, D].</summary>
    private static Tensor Run(VitAttention[] attention, TaskPrefixPrompts prompts, Tensor x) =>
        stack(Enumerable.Range(0, Layers).Select(l => attention[l].Forward(x, prompts, l)).ToArray());

    private static void AssertClose(Tensor expected, Tensor actual, string what, double tolerance = 1e-4)
    {
        Assert.Equal(expected.shape, actual.shape);
        var difference = (expected - actual).abs().max().item<float>();
        Assert.True(difference < tolerance, $"{what}: max difference {difference}");
    }

    private static Tensor TrainInput => F("input.x").narrow(0, 0, 4);
    private static Tensor EvalTasks => F("input.eval_tasks").to(int64);

    public static TheoryData<string, string, string> Cases => new()
    {
        { "norga_sigmoid", "train", "official-reshape" }, { "norga_sigmoid", "eval", "official-reshape" },
        { "norga_sigmoid", "train", "per-sample" }, { "norga_sigmoid", "eval", "per-sample" },
        { "norga_tanh", "train", "official-reshape" }, { "norga_tanh", "eval", "official-reshape" },
        { "norga_tanh", "eval", "per-sample" },
        { "hide", "train", "official-reshape" }, { "hide", "eval", "official-reshape" },
        { "hide", "train", "per-sample" }, { "hide", "eval", "per-sample" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void PrefixAttentionMatchesTheOfficialModules(string kind, string call, string layout)
    {
        GateActivation? gate = kind switch { "norga_sigmoid" => GateActivation.Sigmoid, "norga_tanh" => GateActivation.Tanh, _ => null };
        var official = layout == "official-reshape";
        var prompts = Prompts(gate, official ? PromptBatchLayout.OfficialReshape : PromptBatchLayout.PerSample);
        var attention = Attention();
        using var noGrad = no_grad();
        Tensor x;
        if (call == "train")
        {
            x = TrainInput;
            prompts.UseTask(TrainTask, Momentum);
        }
        else
        {
            x = F("input.x");
            prompts.UsePerSample(EvalTasks);
        }
        var expected = F($"expected.{kind}.{call}.{(official ? "out" : "per_sample_out")}");
        AssertClose(expected, Run(attention, prompts, x), $"{kind} {call} {layout}");
        // The two layouts really differ on this input: the test would catch one silently replaced by the other.
        var other = F($"expected.{kind}.{call}.{(official ? "per_sample_out" : "out")}");
        Assert.True((other - expected).abs().max().item<float>() > 0.1);
    }

    [Fact]
    public void PromptMomentumPrefixesMatchTheOfficialEPrompt()
    {
        var prompts = Prompts(GateActivation.Sigmoid, PromptBatchLayout.OfficialReshape);
        prompts.UseTask(TrainTask, Momentum);
        using var noGrad = no_grad();
        using var queries = zeros(4, Heads, 5, HeadDim);
        for (var l = 0; l < Layers; l++)
        {
            var prefix = prompts.ForBlock(l, queries)!;
            AssertClose(F("expected.norga_sigmoid.train.prefix.keys")[l], prefix.Keys!, $"layer {l} keys", 1e-6);
            AssertClose(F("expected.norga_sigmoid.train.prefix.values")[l], prefix.Values, $"layer {l} values", 1e-6);
        }
    }

    [Fact]
    public void GradientsOfPromptsAndGateMatchTheOfficialTrainingCall()
    {
        // Checks which prompts receive gradient under momentum (task 2 only: the mean of tasks 0-1 is detached) and the
        // gate's (tau, alpha) gradient, with the official layout.
        var prompts = Prompts(GateActivation.Sigmoid, PromptBatchLayout.OfficialReshape);
        var attention = Attention();
        foreach (var a in attention) foreach (var p in a.parameters()) p.requires_grad_(false);
        prompts.UseTask(TrainTask, Momentum);
        var loss = (Run(attention, prompts, TrainInput) * F("input.grad_weights")).sum();
        loss.backward();
        AssertClose(F("expected.norga_sigmoid.train.grad.prompt"), prompts.Prompts.grad!, "prompt gradient", 1e-3);
        AssertClose(F("expected.norga_sigmoid.train.grad.act_scale").reshape(Layers, 2), prompts.Gate!.Scales.grad!, "act_scale gradient", 1e-3);
        Assert.Equal(0f, prompts.Prompts.grad!.narrow(2, 0, TrainTask).abs().max().item<float>());
    }

    [Fact]
    public void TiiNetworkMatchesTheOfficialMlpMappingAndHead()
    {
        const int dim = Heads * HeadDim, classes = 6;
        using var tii = new TaskIdentityInference(dim, classes);
        var names = new Dictionary<string, string>
        {
            ["fc1.weight"] = "tii.net0.weight", ["fc1.bias"] = "tii.net0.bias", ["fc2.weight"] = "tii.net1.weight",
            ["fc2.bias"] = "tii.net1.bias", ["norm.weight"] = "tii.norm.weight", ["norm.bias"] = "tii.norm.bias",
            ["head.weight"] = "tii.head.weight", ["head.bias"] = "tii.head.bias",
        };
        using (no_grad())
            foreach (var (name, p) in tii.named_parameters())
                if (names.TryGetValue(name, out var fixtureName)) p.copy_(F(fixtureName));
        Assert.Equal(names.Count, tii.NetworkParameters.Count);
        using var noGrad = no_grad();
        AssertClose(F("expected.tii.logits"), tii.Logits(F("tii.input")), "TII logits");
    }
}
