// A handler-mode example: keeps a counter between calls in one container.
let calls = 0;

exports.handle = async (params) => {
  calls += 1;
  console.log(`hello called ${calls} times`);
  return { hello: (params && params.name) || 'world', calls };
};
