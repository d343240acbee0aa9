#include "ops/reshape.h"

#include "autograd/autograd.h"

namespace ssa {
namespace {

struct ReshapeNode : Node {
  Shape input_shape;
  explicit ReshapeNode(Shape s) : input_shape(s) {}
  const char* name() const override { return "reshape"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {g.reshape(input_shape)}; }
};

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) {
  Tensor out = x.reshape(shape);
  if (!should_record({&x})) return out;
  return record(out, std::make_shared<ReshapeNode>(x.shape()), {x});
}

}  // namespace ssa
